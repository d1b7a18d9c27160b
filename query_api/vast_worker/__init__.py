"""vast.ai worker reports: an unchanged pyworker reports to Vitals (`routes`); its reports
become heartbeat and request events (`reports`); the public key it trusts (`signing`)."""
