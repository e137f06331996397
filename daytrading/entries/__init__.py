"""The day trader's core: trading loop, entry pipeline, watchlist, premarket/MOO, confidence and LLM scoring."""
