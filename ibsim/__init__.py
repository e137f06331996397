"""ibsim: a local IB Gateway simulator speaking the TWS API socket protocol on loopback.

Standalone: imports nothing from the rest of the project. `python -m ibsim --help`.
"""

__version__ = "0.1.0"
