@echo off
rem Server 3 of the 5-node cluster on this machine: HTTP port 8083, Raft 127.0.0.1:6003, data
rem in data\server3. Runs create_server3.sh inside WSL (see run_in_wsl.bat for why); extra
rem arguments go to raftkv node.
setlocal
set "RAFTKV_SCRIPT=create_server3.sh"
call "%~dp0run_in_wsl.bat" %*
exit /b %ERRORLEVEL%
