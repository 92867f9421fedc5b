"""Deployment: the no-Docker local stack (``deploy.local``) and compose assets."""
