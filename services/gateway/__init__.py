"""The only public API: tenant REST, widget endpoints and the visitor's SSE stream."""
