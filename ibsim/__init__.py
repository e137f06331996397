"""ibsim: a local IB Gateway simulator speaking the TWS API socket protocol on loopback.

Standalone: imports nothing from the rest of the project. `python -m ibsim --help`.

Layers (each imports only from the layers above it in this list, never sideways into a
later one and never back; no module imports another inside a function to dodge a cycle):

1. `model` (shared value types, the `Engine` / `EngineListener` protocols) and `ctl` (the
   stdlib-only control client and the control channel's constants). Neither imports ibsim.
2. `market/`: calendar, clock, universe, day paths, the synthetic / file / scenario tapes.
3. `engine/`: order rules, book, account, feeds, snapshot, and the engine's parts (core <-
   matcher <- entry; core <- controls; sim joins them into `SimEngine`).
4. `wire/`: protocol, request records, decoders, encoders, session, the listening socket.
   It needs nothing from market/ or engine/: the gateway reaches it through the small
   protocols it declares (`session.SessionHost`, `server.ConnectionHost`).
5. `gateway/`: history <- fanout <- hub <- handlers / order_handlers / control <- app.
   It sees the engine only as `model.Engine`.
6. `cli` (`python -m ibsim`, `__main__`) and `testing` (helpers for tests and benchmarks):
   the only modules that put a concrete engine and the gateway together.

So market/engine and wire/gateway are two stacks that meet only in `model` and at the root.
"""

__version__ = "0.1.0"
