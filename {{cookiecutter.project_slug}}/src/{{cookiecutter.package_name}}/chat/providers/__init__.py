"""LLM providers: each turns a chat request into a stream of tokens."""
