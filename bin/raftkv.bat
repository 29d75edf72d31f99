@echo off
rem Runs the raftkv binary from the repository's release build, building it first if it is missing.
set "ROOT=%~dp0.."
if not exist "%ROOT%\target\release\raftkv.exe" (
  echo building raftkv ^(first run only^)...
  cargo build --release --manifest-path "%ROOT%\Cargo.toml" || exit /b 1
)
"%ROOT%\target\release\raftkv.exe" %*
