@echo off
rem Server 0 of the 5-node cluster on this machine: HTTP port 8080, Raft 127.0.0.1:6000, data
rem in data\server0. Runs create_server0.sh inside WSL (see run_in_wsl.bat for why); extra
rem arguments go to raftkv node.
setlocal
set "RAFTKV_SCRIPT=create_server0.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
