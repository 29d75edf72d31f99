@echo off
rem Runs the raftkv binary (any subcommand and arguments) through raftkv.sh inside WSL, which
rem builds the release binary on first use: see run_in_wsl.bat for why raftkv runs in WSL.
setlocal
set "RAFTKV_SCRIPT=raftkv.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
