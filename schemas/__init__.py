"""JSON Schemas for the OCI image-spec media types, shipped inside the ocikit wheel."""
