"""Versioned SQL migrations, one folder per engine, files named `NNNN_description.sql`."""
