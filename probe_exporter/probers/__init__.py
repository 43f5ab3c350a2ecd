"""The probers, one module (or package) each; probe_exporter.registry names them."""
