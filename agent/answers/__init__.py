"""Answering from what the agent knows: matching questions, checking the model's facts, and
what to say when the words make no sense or nothing is known."""
