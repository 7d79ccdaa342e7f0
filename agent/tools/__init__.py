"""Tools an agent may use: their specification, the choice of tool, and carrying them out."""
