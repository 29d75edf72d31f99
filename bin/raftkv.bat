@echo off
rem Runs the raftkv binary (any subcommand and arguments) through raftkv.sh inside WSL, which builds
rem the release binary on first use: see run_in_wsl.bat for why raftkv runs in WSL on Windows.
call "%~dp0run_in_wsl.bat" raftkv.sh %*
exit /b %ERRORLEVEL%
