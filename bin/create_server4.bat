@echo off
rem Server 4 of the 5-node cluster on this machine: HTTP port 8084, Raft 127.0.0.1:6004.
call "%~dp0raftkv.bat" node 8084 127.0.0.1:6004 127.0.0.1:6000 127.0.0.1:6001 127.0.0.1:6002 127.0.0.1:6003 --data-dir "%~dp0..\data\server4" %*
