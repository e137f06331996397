"""The simulated market: NYSE sessions, simulated time, the symbol universe and the price tapes.

Pure data and arithmetic: nothing here knows about orders, accounts or sockets. Imports only
`ibsim.model` (and numpy; pandas for file tapes).
"""
