"""Web apps that hand their LLM calls to turnout: see README.md here."""
