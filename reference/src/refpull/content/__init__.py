"""Content: manifests and configs, schema1 conversion, decompression and the blob store."""
