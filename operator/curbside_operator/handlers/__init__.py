"""Thin kopf adapters: parse, call reconcile, apply, patch status once."""
