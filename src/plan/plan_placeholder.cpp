// The plan layer (placeholder so the library links before its sources land).
