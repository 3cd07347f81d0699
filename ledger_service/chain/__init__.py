"""Chain access: compiled contract artifacts, deployment manifests and web3 clients."""
