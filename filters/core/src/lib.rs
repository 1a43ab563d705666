//! Plugin configuration and the per-request pipeline of the meshwake filter, behind host traits. No proxy-wasm dependency.
