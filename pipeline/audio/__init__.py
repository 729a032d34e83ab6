"""Audio in: reading and checking audio files, and the log-mel filterbank front end."""
