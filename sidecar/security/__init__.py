"""Input and output security checks: prompt-attack detection, secret and PII redaction."""
