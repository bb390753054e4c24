"""cocotb test benches and runners that check the emitted RTL against the golden model."""
