"""The shop service: owns members, shops, selections and keeper levels."""
