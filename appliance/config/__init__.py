"""The site configuration: schema, YAML loading with line numbers, checks, secrets, paths."""
