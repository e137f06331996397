"""The simulated IB Gateway: sessions by client id (hub), request handlers, the fan-out of
engine events to subscribers, the control commands, and the app that wires them to a socket.

Imports `ibsim.model`, `ibsim.wire` and `ibsim.ctl` (control-channel constants); it talks to
the engine only through the `model.Engine` protocol.
"""
