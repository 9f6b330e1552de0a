"""Every event, recorded once; rollups and reports on top."""
