"""mcanb: medical code assignment notebooks (a rerunnable reproduction of Ji, Hölttä & Marttinen 2021)."""

__version__ = "0.1.0"
