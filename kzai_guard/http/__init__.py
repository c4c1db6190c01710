"""HTTP renderings: problem details, the disclosure header, structured-field parsing."""
