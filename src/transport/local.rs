//! The `local` transport: runs PowerShell as a child process on the controller.
