"""Runtime bundles: what ocikit records in one (``meta``), image config -> config.json
(``convert``), and the shared store of extracted layers keyed by chainID (``layerstore``)."""
