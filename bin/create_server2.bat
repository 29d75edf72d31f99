@echo off
rem Server 2 of the 5-node cluster on this machine: HTTP port 8082, Raft 127.0.0.1:6002, data
rem in data\server2. Runs create_server2.sh inside WSL (see run_in_wsl.bat for why); extra
rem arguments go to raftkv node.
setlocal
set "RAFTKV_SCRIPT=create_server2.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
