"""The OSC bridge: `protocol` (messages <-> plain requests), `server` (the UDP service),
`client` (a small client for scripts, tests and the companion). See `docs/osc.md`."""
