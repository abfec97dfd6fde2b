"""Wire types: msgspec Structs for each API dialect, with encoders and decoders built once."""
