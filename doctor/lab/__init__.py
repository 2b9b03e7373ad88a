"""The mesh lab: real Envoy sidecars on 127.0.0.1 that reproduce incidents.

It builds the sample bundles under examples/ and backs the end-to-end tests.
"""
