"""The engines (speech to text, language model, speech) and turn-taking."""
