"""The only code that talks to the Kubernetes API server; raises our own error types."""
