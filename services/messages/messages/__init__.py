"""The messages service: owns conversation threads and the notifications people receive."""
