"""The stream processor: topic kinds, decode, rows per kind (`rows/`), the sink (isolation, dead
letters), compaction, the faust worker."""
