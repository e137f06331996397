"""Value types, decisions, errors, order references, clock, market calendar, backoff: the bottom layer, importing nothing else of the suite."""
