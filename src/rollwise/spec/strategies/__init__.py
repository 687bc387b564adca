"""One module per strategy; `Strategy` holds exactly one of them."""
