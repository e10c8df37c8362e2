// The engine layer (placeholder so the library links before its sources land).
