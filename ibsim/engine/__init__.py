"""The simulated broker and exchange: order rules, the book, the account, live feeds, the
matcher and the loop that drives them (`ibsim.engine.sim.SimEngine`).

Imports `ibsim.model` and `ibsim.market` only; it never touches a socket. It reports what
happened through the `model.EngineListener` it is given.
"""
