"""The TWS API wire: framing and field rules (protocol), request records and their decoders,
message encoders, one client connection (session) and the listening socket (server).

Imports `ibsim.model` and `ibsim.ctl` (the control channel's greeting) only; what a request
means is the gateway's business, reached through the small protocols declared here
(`session.SessionHost`, `server.ConnectionHost`).
"""
