"""Where consents, objections, kill switches, review tickets and explanations are kept."""
