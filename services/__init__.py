"""The platform's services, one package per container, and their shared plumbing."""
