"""Plumbing every service shares: settings groups, logging, readiness and probes."""
