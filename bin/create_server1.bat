@echo off
rem Server 1 of the 5-node cluster on this machine: HTTP port 8081, Raft 127.0.0.1:6001, data
rem in data\server1. Runs create_server1.sh inside WSL (see run_in_wsl.bat for why); extra
rem arguments go to raftkv node.
setlocal
set "RAFTKV_SCRIPT=create_server1.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
