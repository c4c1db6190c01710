"""``kzai-guard report``: the compliance officer's view, one self-contained HTML file."""
