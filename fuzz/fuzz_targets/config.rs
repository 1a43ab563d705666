//! Plugin configuration: `setup` (`Config::parse`, identity, engine, exporter) never fails
//! or panics on any bytes, and every number ends up inside its documented range.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_core::config::limits;
use meshwake_core::HostFacts;

fuzz_target!(|data: &[u8]| {
    let host = HostFacts {
        node: &meshwake_fuzz::NoNode,
        listener_direction: data.first().map(|b| i64::from(*b % 4)),
        filter_version: "fuzz",
        // Both builds' setups: the propagation-only one turns spans, metrics and the
        // identity exchange off whatever the bytes say.
        propagation_only: data.get(1).is_some_and(|b| b & 1 == 1),
    };
    let setup = meshwake_core::setup(data, &host);
    for i in &setup.issues {
        let _ = i.to_string();
    }
    let _ = setup.summary();
    let cfg = setup.engine.config();
    if host.propagation_only {
        assert!(!cfg.spans.enabled && !cfg.metrics.enabled && !cfg.identity.exchange);
    }
    let e = &cfg.export;
    assert!((1..=limits::MAX_QUEUE_SPANS).contains(&e.max_queue_spans));
    assert!((1..=limits::MAX_BATCH_SPANS).contains(&e.max_batch_spans));
    assert!((1..=limits::MAX_IN_FLIGHT).contains(&e.max_in_flight));
    assert!(e.flush_interval_ms >= limits::MIN_FLUSH_MS);
    assert!((1..=limits::MAX_LABEL_SETS).contains(&cfg.metrics.max_label_sets));
    assert!((1..=limits::MAX_LINEAGE).contains(&cfg.identity.lineage_max));
    assert!((1..=limits::MAX_RECOVERY_SLOTS).contains(&cfg.context_recovery.slots));
    assert!((0.0..=1.0).contains(&cfg.sampling.ratio));
});
