"""Model registry: config entries → (preprocessing cfg, torch model). Import-light."""
