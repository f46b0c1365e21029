"""Curating training data: the correctness/finish/length filter and Mix-Long / Mix-Large mixing."""
